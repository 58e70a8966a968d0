package main

// The store backends beyond the local directory: ckpt accepts s3:// and
// postgres:// store addresses.
import (
	_ "github.com/ckptdev/ckpt/store/pgstore"
	_ "github.com/ckptdev/ckpt/store/s3store"
)
