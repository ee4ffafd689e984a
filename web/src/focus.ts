import { nextTick, watch, type Ref, type WatchSource } from 'vue'

/**
 * Keeps the focus where it was when `moved` changes, in a list whose element
 * moves in the document when it does: an edited row that left the list stays
 * on screen apart from the others. Moving an element takes it out of the
 * document for a moment, and the browser drops the focus that was inside it;
 * whoever was typing in that row's editor must be able to go on typing.
 */
export function useFocusAcrossMoves(moved: WatchSource<unknown>, container: Ref<HTMLElement | null>) {
  // Runs before the list's DOM update (the default "pre" flush), so the
  // focus it sees is the one from before the move.
  watch(moved, async () => {
    const active = document.activeElement
    if (!(active instanceof HTMLElement) || !container.value?.contains(active)) return
    await nextTick()
    if (active.isConnected && document.activeElement !== active) active.focus({ preventScroll: true })
  })
}
