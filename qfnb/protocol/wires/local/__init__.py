"""The local platform's own routes: what a keyed call is doing (call_progress: ``GET /qfnb/calls/{key}``)
and code completion's body (completion: ``POST /qfnb/complete``). Imports no other room of the wires."""
