// End-to-end check of the provider in a real browser: Playwright (playwright-core,
// which never downloads a browser of its own) driving the system's Chromium.
//
// Scenario 1, single sign-on and single logout across two relying parties
// (department sites):
//   RP A login -> provider login page (username/password with the right
//   autocomplete tokens) -> back on RP A logged in; RP B login comes back
//   logged in without the provider login page; logout on RP A ends the
//   provider's SSO session and returns to RP A; logout on RP B,
//   then its login shows the provider login page again (and logs in again).
// Scenario 2 (when FORM_POST_AUTHORIZE_URL is set), response_mode=form_post:
//   the provider's auto-submitting form posts the authorization response to
//   FORM_POST_CALLBACK under the provider's Content-Security-Policy.
// Scenario 3 (when STEP_UP_RP is set), step-up: on an RP of the
//   provider STEP_UP_PROVIDER (wired to a sandbox gateway), the service that
//   needs level L3 sends a level-2 user (signed in with the ID number
//   STEP_UP_IDENTIFIER and STEP_UP_PASSWORD) through the step-up page: the
//   carrier check of its confirmed phone in the account console, then a code
//   by SMS read from the sandbox outbox page STEP_UP_OUTBOX; the RP then shows
//   acr L3 and the verified name STEP_UP_NAME.
//
// Throughout: no console errors (CSP violations included) on provider pages.
//
// Environment: PROVIDER, RP_A, RP_B, USERNAME, PASSWORD, SCREENSHOT_DIR;
// optional FORM_POST_AUTHORIZE_URL and FORM_POST_CALLBACK; CHROMIUM (default
// /usr/bin/chromium).
// Output: one JSON summary on stdout; exit 0 on success, 1 with a message on
// stderr on any failure (the summary then has ok=false and the error).

import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import process from 'node:process'

import { chromium } from 'playwright-core'

import { FlowError, check, env, fail } from './support.mjs'

const STEP_TIMEOUT_MS = 10_000
const LOGIN_BUTTON = 'Log in with the provincial account'
const LOGOUT_BUTTON = 'Log out'
const LOGGED_OUT_MESSAGE = 'You have logged out'

function isFaviconMiss(location, text) {
  try {
    return new URL(location).pathname === '/favicon.ico' && text.startsWith('Failed to load resource')
  } catch {
    return false
  }
}

function trimSlash(url) {
  return url.replace(/\/+$/, '')
}

const summary = {
  ok: false, steps: [], screenshots: [], console_errors: [], ignored_console_errors: [],
  http_errors: [],
}

async function main() {
  const provider = trimSlash(env('PROVIDER'))
  const rpA = trimSlash(env('RP_A'))
  const rpB = trimSlash(env('RP_B'))
  const username = env('USERNAME')
  const password = env('PASSWORD')
  const screenshotDir = env('SCREENSHOT_DIR')
  const formPostUrl = env('FORM_POST_AUTHORIZE_URL', { optional: true })
  const formPostCallback = env('FORM_POST_CALLBACK', { optional: !formPostUrl })
  const executablePath = env('CHROMIUM', { optional: true }) || '/usr/bin/chromium'
  const providerOrigin = new URL(provider).origin
  const stepUpRp = env('STEP_UP_RP', { optional: true })
  const stepUp = stepUpRp ? {
    rp: trimSlash(stepUpRp), provider: trimSlash(env('STEP_UP_PROVIDER')),
    identifier: env('STEP_UP_IDENTIFIER'), password: env('STEP_UP_PASSWORD'),
    outbox: env('STEP_UP_OUTBOX'), name: env('STEP_UP_NAME'),
  } : null
  const providerOrigins = new Set([providerOrigin,
    ...(stepUp ? [new URL(stepUp.provider).origin] : [])])
  mkdirSync(screenshotDir, { recursive: true })

  const browser = await chromium.launch({
    executablePath,
    timeout: STEP_TIMEOUT_MS * 3,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  })
  summary.chromium = browser.version()
  try {
    const context = await browser.newContext({ viewport: { width: 1100, height: 800 } })
    // Runs in every document before its own scripts (and is not subject to the
    // page's CSP): report CSP violations as console errors in any case.
    await context.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (event) => {
        console.error(`CSP violation: ${event.violatedDirective} blocked `
          + `${event.blockedURI || '(inline)'} (${event.disposition})`)
      })
    })
    const page = await context.newPage()
    page.setDefaultTimeout(STEP_TIMEOUT_MS)
    page.setDefaultNavigationTimeout(STEP_TIMEOUT_MS)

    const isProvider = (url) => {
      try {
        return providerOrigins.has(new URL(url).origin)
      } catch {
        return false
      }
    }

    // Every main-frame navigation, redirect hops included.
    const navigations = []
    page.on('request', (request) => {
      if (request.isNavigationRequest() && request.frame() === page.mainFrame()) {
        navigations.push(`${request.method()} ${request.url()}`)
      }
    })
    page.on('response', (response) => {
      if (response.status() >= 400 && isProvider(response.url())) {
        summary.http_errors.push(`${response.status()} ${response.request().method()} `
          + `${response.url()}`)
      }
    })
    // Set while the CSP probe deliberately provokes a violation.
    let probeErrors = null
    page.on('console', (message) => {
      if (message.type() !== 'error') return
      const location = message.location()?.url ?? ''
      const entry = {
        page: page.url(), location, text: message.text(),
        provider: isProvider(location) || isProvider(page.url()),
      }
      if (probeErrors) {
        probeErrors.push(entry)
      } else if (isFaviconMiss(location, entry.text)) {
        // Chromium fetches /favicon.ico by itself; no page asks for it.
        summary.ignored_console_errors.push(entry)
      } else {
        summary.console_errors.push(entry)
      }
    })
    page.on('pageerror', (error) => {
      summary.console_errors.push({
        page: page.url(), location: '', text: `uncaught: ${error.message}`,
        provider: isProvider(page.url()),
      })
    })

    async function step(name, fn) {
      const started = Date.now()
      const firstNavigation = navigations.length
      try {
        const detail = await fn()
        summary.steps.push({
          name, ms: Date.now() - started, url: page.url(),
          navigations: navigations.slice(firstNavigation), ...(detail ?? {}),
        })
      } catch (error) {
        summary.steps.push({ name, ms: Date.now() - started, url: page.url(), failed: true,
          navigations: navigations.slice(firstNavigation) })
        try {
          const path = join(screenshotDir, 'failure.png')
          await page.screenshot({ path, fullPage: true, timeout: STEP_TIMEOUT_MS })
          summary.screenshots.push(path)
        } catch {
          // the page may be gone
        }
        const reason = error instanceof FlowError ? error.message : `${error.name}: ${error.message}`
        throw new FlowError(`step "${name}" failed at ${page.url()}: ${reason}`)
      }
    }

    async function screenshot(name) {
      const path = join(screenshotDir, `${name}.png`)
      await page.screenshot({ path, fullPage: true })
      summary.screenshots.push(path)
    }

    function visitedProviderLogin(list) {
      return list.some((entry) => {
        const url = new URL(entry.split(' ')[1])
        return url.origin === providerOrigin && url.pathname === '/login'
      })
    }

    // Runs action and waits until the main frame commits a URL matching
    // predicate (redirect hops are never committed). The waiter is set up
    // first: the page may already be on a matching URL before the action.
    async function navigate(action, predicate, expected) {
      const arrived = page.waitForEvent('framenavigated', {
        predicate: (frame) => frame === page.mainFrame() && predicate(new URL(frame.url())),
      }).catch((error) => error)
      await action()
      const result = await arrived
      if (result instanceof Error) {
        const alerts = await page.locator('[role="alert"]').allInnerTexts().catch(() => [])
        fail(`did not arrive at ${expected} within ${STEP_TIMEOUT_MS} ms `
          + `(${result.name}; now at ${page.url()}`
          + `${alerts.length ? `, the page says: ${alerts.join(' / ')}` : ''})`)
      }
      await page.waitForLoadState('load')
    }

    const atProviderLogin = (url) => url.origin === providerOrigin && url.pathname === '/login'

    async function expectProviderLoginPage() {
      const user = page.locator('input[name="username"]')
      const pass = page.locator('input[name="password"]')
      await user.waitFor({ state: 'visible' })
      await pass.waitFor({ state: 'visible' })
      const userAutocomplete = await user.getAttribute('autocomplete')
      const passAutocomplete = await pass.getAttribute('autocomplete')
      check(userAutocomplete === 'username',
        `username field has autocomplete=${JSON.stringify(userAutocomplete)}, expected "username"`)
      check(passAutocomplete === 'current-password',
        `password field has autocomplete=${JSON.stringify(passAutocomplete)}, `
        + 'expected "current-password"')
      check(await pass.getAttribute('type') === 'password', 'the password field is not type=password')
      return { lang: await page.locator('html').getAttribute('lang') }
    }

    // Proves that a CSP violation on a provider page would be caught: an
    // inline <style> is not allowed by the provider's style-src 'self', so it
    // must be refused and reported as a console error (these expected errors
    // are not counted). (eval() makes no probe: Chromium allowed it from
    // page.evaluate, which runs through the DevTools protocol.)
    async function cspProbe() {
      probeErrors = []
      try {
        const applied = await page.evaluate(() => {
          const style = document.createElement('style')
          style.textContent = 'html { outline: 7px solid rgb(1, 2, 3) }'
          document.head.append(style)
          const outline = getComputedStyle(document.documentElement).outlineColor
          style.remove()
          return outline === 'rgb(1, 2, 3)'
        })
        check(!applied, 'an inline <style> was applied on the provider login page: '
          + 'is the Content-Security-Policy missing?')
        // Violation reports are dispatched asynchronously: wait for both the
        // init script's report and Chromium's own message, so that neither
        // arrives after the probe and is counted as a real error.
        const reported = () => probeErrors.some((entry) => entry.text.includes('CSP violation'))
        const native = () => probeErrors.some((entry) => entry.text.includes('Content Security Policy'))
        const deadline = Date.now() + 2_000
        while (!(reported() && native()) && Date.now() < deadline) await page.waitForTimeout(50)
        check(reported(), 'a deliberate CSP violation on the provider login page was not '
          + 'reported as a console error, so the console check would miss real ones: '
          + JSON.stringify(probeErrors))
        return { inline_style_refused: true, reported: probeErrors.map((entry) => entry.text) }
      } finally {
        probeErrors = null
      }
    }

    async function submitLogin() {
      await page.locator('input[name="username"]').fill(username)
      await page.locator('input[name="password"]').fill(password)
      await page.locator('form:has(input[name="password"]) button[type="submit"]').click()
    }

    async function expectLoggedIn(rp) {
      const text = await page.locator('body').innerText()
      check(text.includes(username), `the RP page does not show the username ${username}`)
      await page.getByRole('button', { name: LOGOUT_BUTTON }).waitFor({ state: 'visible' })
    }

    async function clickLogin() {
      await page.getByRole('link', { name: LOGIN_BUTTON }).click()
    }

    const atHome = (rp) => (url) => url.href === `${rp}/`
    const atLoggedOut = (rp) => (url) => url.href.startsWith(`${rp}/?state=`)

    // --- scenario 1: SSO and single logout ----------------------------------

    await step('RP A: log in through the provider login page', async () => {
      await page.goto(`${rpA}/`)
      await navigate(clickLogin, atProviderLogin, 'the provider login page')
      const detail = await expectProviderLoginPage()
      await screenshot('01-provider-login')
      return { ...detail, csp_probe: await cspProbe() }
    })

    await step('provider: submit username and password, back on RP A', async () => {
      await navigate(submitLogin, atHome(rpA), `${rpA}/`)
      await expectLoggedIn(rpA)
      await screenshot('02-rp-a-logged-in')
    })

    await step('RP B: single sign-on without the login page', async () => {
      const first = navigations.length
      await page.goto(`${rpB}/`)
      await navigate(clickLogin, atHome(rpB), `${rpB}/`)
      await expectLoggedIn(rpB)
      const hops = navigations.slice(first)
      check(hops.some((hop) => isProvider(hop.split(' ')[1])),
        `RP B's login did not go through the provider: ${hops.join(', ')}`)
      check(!visitedProviderLogin(hops),
        `RP B's login showed the provider login page: ${hops.join(', ')}`)
      await screenshot('03-rp-b-single-sign-on')
    })

    await step('RP A: log out through the provider', async () => {
      const first = navigations.length
      await page.goto(`${rpA}/`)
      await navigate(() => page.getByRole('button', { name: LOGOUT_BUTTON }).click(),
        atLoggedOut(rpA), `${rpA}/?state=...`)
      const hops = navigations.slice(first)
      check(hops.some((hop) => {
        const url = new URL(hop.split(' ')[1])
        return url.origin === providerOrigin && url.pathname === '/logout'
      }), `RP A's logout did not go through the provider's /logout: ${hops.join(', ')}`)
      const text = await page.locator('body').innerText()
      check(text.includes(LOGGED_OUT_MESSAGE),
        `RP A does not confirm the logout ("${LOGGED_OUT_MESSAGE}")`)
      await page.getByRole('link', { name: LOGIN_BUTTON }).waitFor({ state: 'visible' })
      await screenshot('04-rp-a-logged-out')
    })

    await step('RP B: logged out by back-channel logout; the provider asks for the password', async () => {
      // The provider told RP B (OpenID Connect Back-Channel Logout) from its
      // worker; RP B's own session ends at its next request.
      const deadline = Date.now() + 15000
      for (;;) {
        await page.goto(`${rpB}/`)
        if (await page.getByRole('button', { name: LOGOUT_BUTTON }).count() === 0) break
        if (Date.now() > deadline) throw new Error('RP B still shows its session')
        await page.waitForTimeout(200)
      }
      await navigate(clickLogin, atProviderLogin, 'the provider login page')
      const detail = await expectProviderLoginPage()
      await screenshot('05-provider-login-after-logout')
      return detail
    })

    await step('provider: log in again, back on RP B', async () => {
      await navigate(submitLogin, atHome(rpB), `${rpB}/`)
      await expectLoggedIn(rpB)
    })

    // --- scenario 2: response_mode=form_post ---------------------------------

    if (formPostUrl) {
      await step('provider: form_post authorization response auto-submits', async () => {
        let posted = null
        const onRequest = (request) => {
          if (request.method() === 'POST' && request.url() === formPostCallback) {
            posted = Object.fromEntries(new URLSearchParams(request.postData() ?? ''))
          }
        }
        page.on('request', onRequest)
        try {
          const first = navigations.length
          await navigate(() => page.goto(formPostUrl), (url) => url.href === formPostCallback,
            formPostCallback)
          const body = (await page.locator('body').innerText()).trim()
          check(body === 'ok', `the callback answered ${JSON.stringify(body.slice(0, 200))}`)
          check(posted, 'the browser did not POST to the callback')
          const hops = navigations.slice(first)
          check(!visitedProviderLogin(hops),
            `the form_post authorization showed the login page: ${hops.join(', ')}`)
          return { callback: formPostCallback, posted }
        } finally {
          page.off('request', onRequest)
        }
      })
    }

    // --- scenario 3: step-up to level L3 ------------------------------------

    if (stepUp) {
      const stepUpOrigin = new URL(stepUp.provider).origin
      const atStepUp = (url) => url.origin === stepUpOrigin && url.pathname === '/login/step-up'

      await step('step-up RP: the L3 service asks the provider to sign in', async () => {
        await page.goto(`${stepUp.rp}/`)
        await navigate(() => page.getByRole('link', { name: /needs assurance level L3/ }).click(),
          (url) => url.origin === stepUpOrigin && url.pathname === '/login',
          'the step-up provider login page')
        await page.locator('input[name="username"]').fill(stepUp.identifier)
        await page.locator('input[name="password"]').fill(stepUp.password)
        await navigate(
          () => page.locator('form:has(input[name="password"]) button[type="submit"]').click(),
          atStepUp, 'the step-up page')
        await screenshot('06-step-up-verify')
      })

      await step('step-up: the carrier check of the phone in the account console', async () => {
        await navigate(() => page.locator('#verify').click(),
          (url) => url.pathname === '/account/verify/strong', 'the strong verification page')
        await navigate(() => page.getByRole('button', { name: 'Ask the carrier' }).click(),
          atStepUp, 'the step-up page, now asking for a second factor')
        await screenshot('07-step-up-second-factor')
      })

      await step('step-up: a code by SMS, then back on the RP at level L3', async () => {
        await page.getByRole('button', { name: 'Send code' }).click()
        await page.locator('input[name="code"]').waitFor({ state: 'visible' })
        const outbox = await (await fetch(stepUp.outbox)).text()
        const code = outbox.match(/<td>(\d{6})<\/td>/)?.[1]
        check(code, 'no code on the sandbox outbox page')
        await page.locator('input[name="code"]').fill(code)
        await navigate(() => page.locator('button[value="sms"]').click(),
          (url) => url.href === `${stepUp.rp}/`, `${stepUp.rp}/`)
        const acr = (await page.locator('#acr').innerText()).trim()
        check(acr.startsWith('L3'), `the RP shows acr ${JSON.stringify(acr)}, not L3`)
        const verified = await page.locator('#verified-name').innerText()
        check(verified.includes(stepUp.name),
          `the RP shows the verified name ${JSON.stringify(verified)}`)
        await screenshot('08-step-up-rp-level-3')
        return { acr, verified }
      })
    }

    const providerErrors = summary.console_errors.filter((entry) => entry.provider)
    check(providerErrors.length === 0,
      `console errors on provider pages: ${JSON.stringify(providerErrors)}`)
    const serverErrors = summary.http_errors.filter((entry) => Number(entry.split(' ')[0]) >= 500)
    check(serverErrors.length === 0, `provider server errors: ${serverErrors.join(', ')}`)
    summary.ok = true
    await context.close()
  } finally {
    await browser.close()
  }
}

try {
  await main()
  process.stdout.write(`${JSON.stringify(summary)}\n`)
  process.exitCode = 0
} catch (error) {
  summary.ok = false
  summary.error = error instanceof FlowError ? error.message : `${error.name}: ${error.message}`
  process.stdout.write(`${JSON.stringify(summary)}\n`)
  process.stderr.write(`browser SSO flow FAILED: ${summary.error}\n`)
  if (!(error instanceof FlowError) && error.stack) process.stderr.write(`${error.stack}\n`)
  process.exitCode = 1
}
