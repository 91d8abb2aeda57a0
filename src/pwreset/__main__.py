from pwreset.cli.main import main

# Guarded: the import's worker processes start by importing this module under another name.
if __name__ == "__main__":
    main()
