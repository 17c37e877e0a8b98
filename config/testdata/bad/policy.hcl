# Policy mistakes: every one of them is reported with its position.
policy "remote" {
  match {
    service = ["sshd"]
    rhost   = ["10.0.0.0/8", "192.168.1.7/24", "not-a-network"]
  }
  require = "sometimes"
  methods = ["totp", "email", "totp"]
}

policy "everyone" {
  unenrolled = "deadline"
}

policy "remote" {
  match {
    local = true
    rhost = ["10.0.0.0/8"]
  }
  enroll_deadline = "next tuesday"
}

policy "bad name!" {
  remember_device = "4000h"
}
