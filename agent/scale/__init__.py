"""Scale-out: the executor seam (local process pool or Ray) that sweeps and campaigns run their tasks on."""
