server {
  socket            = ""
  socket_mode       = 660
  max_request_bytes = "65536"
  admin_groups      = "mfad-admin"
}

storage {
  dir      = ["/var/lib/mfad"]
  key_file = null
}

totp {
  issuer = "Example: Corp"
  skew   = "1"
}

audit {
  retention = "1y"
}
