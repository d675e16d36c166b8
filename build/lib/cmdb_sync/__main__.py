from cmdb_sync.cli import main

main()
