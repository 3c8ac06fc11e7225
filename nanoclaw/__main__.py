from nanoclaw.cli import main

main()
