from pollen.cli.app import main

main()
