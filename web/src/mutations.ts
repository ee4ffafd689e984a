// Writes through the typed REST API. Nothing here touches the cache: every
// change comes back through the live subscriptions like anyone else's.
import { useMutation } from '@tanstack/vue-query'
import type { CommentPatch, NewComment, NewItem, NewTask, RowKey, TaskPatch } from '@pglive/client'
import { api } from './api'

/** `meta.context` names the action in error notices (see main.ts). */
function meta(context: string) {
  return { context }
}

export function useItemMutations() {
  return {
    create: useMutation({
      mutationFn: (body: NewItem) => api.items.create(body),
      meta: meta('Could not add the item'),
    }),
    rename: useMutation({
      mutationFn: ({ id, name }: { id: RowKey<'items'>; name: string }) => api.items.update(id, { name }),
      meta: meta('Could not rename the item'),
    }),
    remove: useMutation({
      mutationFn: (id: RowKey<'items'>) => api.items.remove(id),
      meta: meta('Could not delete the item'),
    }),
  }
}

export function useTaskMutations() {
  return {
    create: useMutation({
      mutationFn: (body: NewTask) => api.tasks.create(body),
      meta: meta('Could not add the task'),
    }),
    update: useMutation({
      mutationFn: ({ id, patch }: { id: RowKey<'tasks'>; patch: TaskPatch }) => api.tasks.update(id, patch),
      meta: meta('Could not update the task'),
    }),
    remove: useMutation({
      mutationFn: (id: RowKey<'tasks'>) => api.tasks.remove(id),
      meta: meta('Could not delete the task'),
    }),
  }
}

export function useCommentMutations() {
  return {
    create: useMutation({
      mutationFn: (body: NewComment) => api.comments.create(body),
      meta: meta('Could not add the comment'),
    }),
    update: useMutation({
      mutationFn: ({ id, patch }: { id: RowKey<'comments'>; patch: CommentPatch }) => api.comments.update(id, patch),
      meta: meta('Could not edit the comment'),
    }),
    remove: useMutation({
      mutationFn: (id: RowKey<'comments'>) => api.comments.remove(id),
      meta: meta('Could not delete the comment'),
    }),
  }
}
