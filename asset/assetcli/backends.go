package assetcli

// The store backends beyond the local directory: an asset command accepts
// s3:// and postgres:// store addresses.
import (
	_ "github.com/ckptdev/ckpt/store/pgstore"
	_ "github.com/ckptdev/ckpt/store/s3store"
)
