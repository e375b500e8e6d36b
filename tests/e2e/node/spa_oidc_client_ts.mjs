// oidc-client-ts in Chromium (Playwright driving the system's Chromium): the
// single-page app of tests/e2e/node/spa, served at SPA_URL by the test, a
// public client with PKCE whose origin the provider allows (CORS). Steps:
// signinRedirect -> the provider's login and consent pages ->
// signinRedirectCallback with UserInfo, the profile shown; signinSilent,
// which uses the refresh token; signoutRedirect -> the provider's
// end_session endpoint -> back to the app; signing in again shows the
// provider's login page (the SSO session ended).
//
// Environment: SPA_URL, PROVIDER, USERNAME, PASSWORD, CHROMIUM (default
// /usr/bin/chromium).
// Output: one JSON summary on stdout; exit 0 on success, 1 with a message on
// stderr on any failure.

import process from 'node:process'

import { chromium } from 'playwright-core'

import { FlowError, check, env } from './support.mjs'

const STEP_TIMEOUT_MS = 10_000

const summary = { ok: false, steps: [], fetches: [], console_errors: [] }

async function main() {
  const spa = new URL(env('SPA_URL')).origin
  const provider = new URL(env('PROVIDER')).origin
  const username = env('USERNAME')
  const password = env('PASSWORD')
  const browser = await chromium.launch({
    executablePath: env('CHROMIUM', { optional: true }) || '/usr/bin/chromium',
    timeout: STEP_TIMEOUT_MS * 3,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  })
  summary.chromium = browser.version()
  try {
    const page = await (await browser.newContext()).newPage()
    page.setDefaultTimeout(STEP_TIMEOUT_MS)
    page.setDefaultNavigationTimeout(STEP_TIMEOUT_MS)

    // The app's calls to the provider (fetch/XHR from the app's origin).
    page.on('requestfinished', async (request) => {
      if (!['fetch', 'xhr'].includes(request.resourceType())) return
      const url = new URL(request.url())
      if (url.origin !== provider) return
      const response = await request.response()
      const body = new URLSearchParams(request.postData() ?? '')
      summary.fetches.push({
        method: request.method(), path: url.pathname, status: response?.status(),
        origin: (await request.allHeaders()).origin ?? null,
        allow_origin: response ? (await response.allHeaders())['access-control-allow-origin']
          ?? null : null,
        grant_type: body.get('grant_type'), client_id: body.get('client_id'),
        code_verifier: body.has('code_verifier'),
      })
    })
    page.on('requestfailed', (request) => {
      summary.console_errors.push(`request failed: ${request.method()} ${request.url()} `
        + `${request.failure()?.errorText}`)
    })
    page.on('console', (message) => {
      if (message.type() === 'error') summary.console_errors.push(message.text())
    })
    page.on('pageerror', (error) => summary.console_errors.push(`uncaught: ${error.message}`))

    async function step(name, fn) {
      try {
        summary.steps.push({ name, ...(await fn() ?? {}), url: page.url() })
      } catch (error) {
        const status = await page.locator('#status').innerText().catch(() => '?')
        const reason = error instanceof FlowError ? error.message : `${error.name}: ${error.message}`
        throw new FlowError(`step "${name}" failed at ${page.url()} (app status: ${status}): `
          + reason)
      }
    }

    const status = (text) => page.locator('#status', { hasText: new RegExp(`^${text}$`) })
      .waitFor({ state: 'visible' })
    const appUser = () => page.evaluate(() => window.spaUser)
    const atProvider = (path) => page.waitForURL((url) => url.origin === provider
      && url.pathname === path)

    await step('open the app', async () => {
      await page.goto(`${spa}/`)
      await status('signed out')
    })

    await step('signinRedirect, login and consent', async () => {
      await page.locator('#signin').click()
      await atProvider('/login')
      const authorize = new URL(page.url())
      await page.locator('input[name="username"]').fill(username)
      await page.locator('input[name="password"]').fill(password)
      await page.locator('form:has(input[name="password"]) button[type="submit"]').click()
      await atProvider('/consent')
      await page.locator('button[name="decision"][value="approve"]').click()
      await page.waitForURL((url) => url.origin === spa)
      await status('signed in')
      return { login_page: authorize.pathname, user: await appUser(),
        shown: { sub: await page.locator('#sub').innerText(),
          name: await page.locator('#name').innerText(),
          email: await page.locator('#email').innerText() } }
    })

    await step('signinSilent with the refresh token', async () => {
      const before = await appUser()
      await page.locator('#renew').click()
      await status('renewed')
      const after = await appUser()
      check(after.access_token !== before.access_token, 'signinSilent kept the access token')
      check(page.url() === `${spa}/`, `signinSilent navigated to ${page.url()}`)
      return { user: after }
    })

    await step('signoutRedirect', async () => {
      const hops = []
      const record = (request) => {
        if (request.isNavigationRequest()) hops.push(request.url())
      }
      page.on('request', record)
      await page.locator('#signout').click()
      await page.waitForURL((url) => url.origin === spa && url.pathname === '/'
        && hops.some((hop) => hop.startsWith(`${provider}/logout`)))
      await status('signed out')
      page.off('request', record)
      return { hops }
    })

    await step('sign in again: the provider asks for the password', async () => {
      await page.locator('#signin').click()
      await atProvider('/login')
      await page.locator('input[name="password"]').waitFor({ state: 'visible' })
    })
    summary.ok = true
  } finally {
    await browser.close()
  }
}

try {
  await main()
  process.stdout.write(`${JSON.stringify(summary)}\n`)
  process.exitCode = 0
} catch (error) {
  summary.error = error instanceof FlowError ? error.message : `${error.name}: ${error.message}`
  process.stdout.write(`${JSON.stringify(summary)}\n`)
  process.stderr.write(`oidc-client-ts flow FAILED: ${summary.error}\n`)
  if (!(error instanceof FlowError) && error.stack) process.stderr.write(`${error.stack}\n`)
  process.exitCode = 1
}
