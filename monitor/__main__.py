from monitor.worker import main

main()
