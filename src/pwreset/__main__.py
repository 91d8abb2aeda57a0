from pwreset.cli.main import main

main()
