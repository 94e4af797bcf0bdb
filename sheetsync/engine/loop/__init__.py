"""The compiled training loop: what shapes it (`spec`), the loop itself as a statement list
(`program`), its two printers (`numba_printer`, `c_printer`), the C compiler (`cc`), the
kernel cache (`cache`), the choice of backend (`backend`) and running it per experiment (`run`).

Imports run one way: spec <- program <- printers <- backend <- run; nothing here imports
`engine.train` or `engine.graddesc`.
"""
