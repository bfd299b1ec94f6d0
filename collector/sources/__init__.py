"""Where log lines come from: tailed files, stdin, the in-process handler, CloudWatch subscriptions."""
