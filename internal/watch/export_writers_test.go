package watch

// recentGet reads the ring without Lookup's inode fallback.
func (w *Writers) recentGet(key string) (Writer, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.recent.get(key)
}
