# Several mistakes at once: every one of them is reported.
server {
  socket_mode       = "0666"
  max_request_bytes = 100
  read_timeout      = "10x"
  login_groups      = ["mfad-login", "bad group"]
}

totp {
  digits       = 7
  period       = "30.5s"
  algorithm    = "MD5"
  skew         = 2
  drift_window = 1
}

recovery {
  count      = 6
  warn_below = 7
}

lockout {
  window = 15
}

log {
  level = "trace"
}
