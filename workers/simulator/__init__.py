"""The vendor simulator: a directory, signed and encrypted callbacks, the API subset we call
with its errcodes and scripted faults. `orgstream demo` and the tests use it."""
