log {
  level = "debug"
}

totp {
  digits = 8
}

log {
  format = "yaml"
}
