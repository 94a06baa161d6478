"""One module per `ingressctl` command; each exposes `register(subparsers)`."""
