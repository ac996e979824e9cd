"""Where untrusted code runs (docker, bubblewrap, process backends); built in issue 3."""
