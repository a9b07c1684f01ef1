# Stands in for ssh in the tests: drops the options and the host, runs the command here
# through the shell, as sshd runs it on the server.
while [ "$1" != "--" ]; do shift; done
shift 2
exec sh -c "$1"
