"""``video-cli``: a command-line client of the video platform's HTTP API (login, resumable
multipart upload with a progress bar, list, show, delete). It imports nothing of the services:
it speaks only HTTP, like any other client."""
