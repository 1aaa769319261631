from graphrec_lab.cli import main

main()
