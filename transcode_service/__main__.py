from transcode_service.main import main

main()
