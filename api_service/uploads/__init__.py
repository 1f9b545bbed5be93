"""Uploads: starting them (single PUT/POST or S3 multipart), the Uppy-compatible multipart
routes, the checks at complete, and the janitor that removes what was abandoned."""
