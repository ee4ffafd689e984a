// The dashboard's REST client: the package's typed client, writing as the
// current user (see session.ts).
import { createApi, type Api } from '@pglive/client'
import { getToken } from './session'

export { ApiRequestError, errorMessage } from '@pglive/client'

export const api: Api = createApi({ getToken })
