from crossprefill_cli.apps.cli.commands import main

main()
