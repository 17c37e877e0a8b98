server {
  sokcet = "/run/mfad/mfad.sock"
}

totp_settings {
  digits = 6
}

level = "debug"
