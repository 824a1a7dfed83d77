module pgsnap

go 1.19
