"""Object storage on S3 (or any S3-compatible server) and the file formats the loop reads."""
