package s3store

// SetListPageSize makes st's List ask for pages of n keys, so that a test
// sees pagination without writing thousands of objects. Call it before
// st is used.
func SetListPageSize(st *Store, n int32) { st.listPage = n }
