# Relative paths are resolved against this file's directory.
server {
  socket = "run/mfad.sock"
}

storage {
  dir      = "state"
  key_file = "../keys/mfad.key"
}
