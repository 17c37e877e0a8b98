server {
  socket = "/run/mfad/mfad.sock"
  read_timeout "10s"
}
