from alloop.cli import main

main()
