from stream_scorer.worker import main

main()
