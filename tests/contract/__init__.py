"""One contract, every change path: the behaviour the service relies on, proven on real servers."""
