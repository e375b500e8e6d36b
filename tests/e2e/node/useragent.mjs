// A minimal cookie-keeping user agent for the end-to-end scripts: it follows
// the provider's redirects, fills its login form and approves its consent
// page, and stops at the client's redirect URI.

import { check, fail } from './support.mjs'

const MAX_STEPS = 12

export class CookieJar {
  constructor() {
    this.cookies = new Map()
  }

  store(response) {
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attributes] = line.split(';')
      const eq = pair.indexOf('=')
      if (eq <= 0) continue
      const name = pair.slice(0, eq).trim()
      const value = pair.slice(eq + 1).trim()
      let expired = value === ''
      for (const attribute of attributes) {
        const [key, val = ''] = attribute.split('=').map((s) => s.trim())
        if (key.toLowerCase() === 'max-age' && Number(val) <= 0) expired = true
        if (key.toLowerCase() === 'expires' && Date.parse(val) <= Date.now()) expired = true
      }
      if (expired) this.cookies.delete(name)
      else this.cookies.set(name, value)
    }
  }

  header() {
    return [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ')
  }
}

function hiddenInputs(html) {
  const fields = {}
  for (const [tag] of html.matchAll(/<input\b[^>]*>/gi)) {
    const attrs = {}
    for (const m of tag.matchAll(/([a-zA-Z_:-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')/g)) {
      attrs[m[1].toLowerCase()] = m[2] ?? m[3]
    }
    if ((attrs.type ?? '').toLowerCase() === 'hidden' && attrs.name) {
      fields[attrs.name] = decodeEntities(attrs.value ?? '')
    }
  }
  return fields
}

function decodeEntities(text) {
  return text
    .replace(/&#(\d+);/g, (_, n) => String.fromCodePoint(Number(n)))
    .replace(/&#x([0-9a-f]+);/gi, (_, n) => String.fromCodePoint(parseInt(n, 16)))
    .replace(/&quot;/g, '"')
    .replace(/&#39;|&apos;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&')
}

// The form of a page that posts to `path` (a page has other forms too, such
// as the sign-out button in its header): its action URL and hidden fields.
function findForm(html, baseUrl, path) {
  for (const [form] of html.matchAll(/<form\b[^>]*>[\s\S]*?<\/form>/gi)) {
    const match = form.match(/^<form\b[^>]*\baction\s*=\s*"([^"]*)"/i)
    const action = new URL(match ? decodeEntities(match[1]) : baseUrl.href, baseUrl)
    if (action.pathname === path) return { action, fields: hiddenInputs(form) }
  }
  fail(`no form posting to ${path} at ${baseUrl.href}`)
}

// Plays the user agent from the authorization URL until the provider redirects
// to redirectUri; returns that URL (the authorization response).
export async function browse(authorizationUrl,
  { issuer, redirectUri, username, password, jar = new CookieJar() }) {
  const origin = new URL(issuer).origin
  const pages = []

  async function request(url, init = {}) {
    const headers = { ...(init.headers ?? {}) }
    const cookie = jar.header()
    if (cookie) headers.cookie = cookie
    const response = await fetch(url, { ...init, headers, redirect: 'manual' })
    jar.store(response)
    pages.push(`${init.method ?? 'GET'} ${url.pathname} -> ${response.status}`)
    return response
  }

  async function submit(html, url, path, fields) {
    const form = findForm(html, url, path)
    check(form.action.origin === origin, `form posts to another origin: ${form.action}`)
    return request(form.action, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ ...form.fields, ...fields }).toString(),
    })
  }

  let url = new URL(authorizationUrl)
  let response = await request(url)
  let loggedIn = false
  let consented = false
  for (let step = 0; step < MAX_STEPS; step += 1) {
    if ([301, 302, 303, 307, 308].includes(response.status)) {
      const location = response.headers.get('location')
      check(location, `redirect without Location from ${url}`)
      const next = new URL(location, url)
      if (next.href.startsWith(redirectUri)) return { callback: next, pages }
      check(next.origin === origin,
        `redirected to ${next.href}, neither the provider nor the redirect URI`)
      url = next
      response = await request(url)
      continue
    }
    const body = await response.text()
    if (response.status === 200 && url.pathname === '/login' && !loggedIn) {
      const { fields } = findForm(body, url, '/login')
      check(fields.csrf_token && fields.i,
        `login form lacks hidden csrf_token/i: ${JSON.stringify(Object.keys(fields))}`)
      loggedIn = true
      response = await submit(body, url, '/login', { username, password })
      url = new URL('/login', origin)
      continue
    }
    if (response.status === 200 && url.pathname === '/consent' && !consented) {
      consented = true
      response = await submit(body, url, '/consent', { decision: 'approve' })
      url = new URL('/consent', origin)
      continue
    }
    fail(`browser stopped at ${url.href} with HTTP ${response.status}: ${body.slice(0, 500)}`)
  }
  fail(`more than ${MAX_STEPS} steps: ${pages.join(', ')}`)
}
