// The provider's pages on a phone: Playwright (playwright-core) drives the
// system's Chromium emulating a 390 x 844 phone (an iPhone 12-15's CSS
// viewport), signs in through the login page, and measures on each page
// whether anything is wider than the screen, i.e. whether the page would
// scroll sideways: document.documentElement.scrollWidth must stay within
// the viewport's width. Each page is also checked in Chinese.
//
// Environment: PROVIDER, USERNAME, PASSWORD, CONSENT_URL (an authorization
// request of a client that asks for consent), SCREENSHOT_DIR; CHROMIUM
// (default /usr/bin/chromium).
// Output: one JSON summary on stdout {ok, viewport, pages: [{name, lang, url,
// scrollWidth, widest}]}; exit 1 with a message on stderr on any failure,
// including a page that is too wide (then listed with its widest element).

import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import process from 'node:process'

import { chromium } from 'playwright-core'

import { FlowError, check, env } from './support.mjs'

const WIDTH = 390
const HEIGHT = 844
const TIMEOUT_MS = 10_000

const summary = { ok: false, viewport: { width: WIDTH, height: HEIGHT }, pages: [] }

// The element sticking out furthest to the right, to say what to fix.
function widestElement() {
  let widest = null
  for (const element of document.querySelectorAll('body *')) {
    const right = element.getBoundingClientRect().right
    if (!widest || right > widest.right) {
      widest = { right, tag: element.tagName.toLowerCase(), cls: element.className,
        text: (element.textContent || '').trim().slice(0, 60) }
    }
  }
  return widest
}

async function main() {
  const provider = env('PROVIDER').replace(/\/+$/, '')
  const username = env('USERNAME')
  const password = env('PASSWORD')
  const consentUrl = env('CONSENT_URL')
  const screenshotDir = env('SCREENSHOT_DIR')
  const executablePath = env('CHROMIUM', { optional: true }) || '/usr/bin/chromium'
  mkdirSync(screenshotDir, { recursive: true })

  const browser = await chromium.launch({
    executablePath,
    timeout: TIMEOUT_MS * 3,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  })
  summary.chromium = browser.version()
  try {
    for (const lang of ['en', 'zh-CN']) {
      const context = await browser.newContext({
        viewport: { width: WIDTH, height: HEIGHT }, deviceScaleFactor: 1, isMobile: true,
        hasTouch: true, locale: lang,
      })
      const page = await context.newPage()
      page.setDefaultTimeout(TIMEOUT_MS)

      async function measure(name) {
        await page.waitForLoadState('load')
        const sizes = await page.evaluate(() => ({
          scrollWidth: document.documentElement.scrollWidth,
          innerWidth: window.innerWidth,
        }))
        const entry = { name, lang, url: page.url(), ...sizes }
        if (sizes.scrollWidth > WIDTH) entry.widest = await page.evaluate(widestElement)
        summary.pages.push(entry)
        await page.screenshot({ path: join(screenshotDir, `${lang}-${name}.png`), fullPage: true })
      }

      await page.goto(`${provider}/login?next=/account`)
      await measure('login')
      await page.locator('input[name="username"]').fill(username)
      await page.locator('input[name="password"]').fill(password)
      await Promise.all([
        page.waitForURL((url) => url.pathname === '/account'),
        page.locator('form:has(input[name="password"]) button[type="submit"]').click(),
      ])
      check((await page.locator('table.evidence tbody tr').count()) >= 2,
        'the account page shows fewer than two evidence rows')
      await measure('account')
      for (const [name, path] of [['home', '/'], ['entities', '/account/entities'],
        ['security', '/account/security'], ['verify-strong', '/account/verify/strong'],
        ['phone', '/account/phone'], ['not-found', '/no-such-page']]) {
        await page.goto(provider + path)
        await measure(name)
      }
      await page.goto(consentUrl)
      check(new URL(page.url()).pathname === '/consent', `not on the consent page: ${page.url()}`)
      await measure('consent')
      await context.close()
    }
    const wide = summary.pages.filter((entry) => entry.scrollWidth > WIDTH)
    check(wide.length === 0, `pages wider than ${WIDTH} px: ${JSON.stringify(wide)}`)
    summary.ok = true
  } finally {
    await browser.close()
  }
}

try {
  await main()
  process.stdout.write(`${JSON.stringify(summary)}\n`)
} catch (error) {
  summary.error = error instanceof FlowError ? error.message : `${error.name}: ${error.message}`
  process.stdout.write(`${JSON.stringify(summary)}\n`)
  process.stderr.write(`small-screen check FAILED: ${summary.error}\n`)
  process.exitCode = 1
}
