"""The one serving flow (serve) and what it stands on: model choice, lanes, offloaded steps, response
shapes, failures in each wire's shape, multipart bodies."""
