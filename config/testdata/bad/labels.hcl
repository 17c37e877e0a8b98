server "main" {
  socket = "/run/mfad/mfad.sock"
}

totp {
  issuer = var.issuer
}
