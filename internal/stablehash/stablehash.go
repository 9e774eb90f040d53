// Package stablehash is the string hash Sluice keeps the same in every
// process, platform and version: sticky routing (route.Hash) and the ring
// hash balancer place values by it.
package stablehash

// String is 64-bit FNV-1a of s's bytes, finished with Mix so that strings
// that differ only in their last bytes land far apart.
func String(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return Mix(h)
}

// Mix is MurmurHash3's 64-bit finalizer (fmix64).
func Mix(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
