from predictor.server import main

main()
