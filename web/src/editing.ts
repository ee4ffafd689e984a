import { computed, nextTick, watch, type Ref } from 'vue'

/**
 * A list whose row is being edited, kept on screen while the row is outside
 * the list (someone else deleted it, or it no longer matches): `shown` is the
 * list's rows with the edited one added first or last, and `ghostId` names it.
 *
 * The edited row keeps its key, so the list moves the same element, editor and
 * typed text included, rather than removing it and showing a second editor
 * beside a copy that is still fading out. Moving an element drops the focus
 * inside it, so the focus is put back afterwards and typing goes on.
 */
export function useEditedRowKept<T extends { id: unknown }>(
  rows: Readonly<Ref<readonly T[] | undefined>>,
  editing: Readonly<Ref<T | null>>,
  place: 'first' | 'last',
  container: Readonly<Ref<HTMLElement | null>>,
) {
  const outside = computed(() => editing.value !== null && !(rows.value ?? []).some((r) => r.id === editing.value?.id))
  const ghostId = computed(() => (outside.value ? editing.value?.id : undefined))
  const shown = computed<readonly T[]>(() => {
    const list = rows.value ?? []
    const edited = editing.value
    if (!outside.value || edited === null) return list
    return place === 'first' ? [edited, ...list] : [...list, edited]
  })

  // Runs before the list's DOM update (the default "pre" flush), so the
  // focus it sees is the one from before the move.
  watch(outside, async () => {
    const active = document.activeElement
    if (!(active instanceof HTMLElement) || !container.value?.contains(active)) return
    await nextTick()
    if (active.isConnected && document.activeElement !== active) active.focus({ preventScroll: true })
  })

  return { shown, ghostId }
}
