// The SPA: a UserManager configured as oidc-client-ts's documentation shows
// (authority, client_id, redirect_uri, post_logout_redirect_uri, scope),
// loadUserInfo on, automaticSilentRenew off. "Renew" calls signinSilent(),
// which, holding a refresh token (offline_access), uses the refresh token
// grant. The token, UserInfo and discovery requests go to the provider's
// origin from this one: cross-origin, allowed by CORS.
/* global oidc, SPA_CONFIG */

const origin = window.location.origin
const manager = new oidc.UserManager({
  authority: SPA_CONFIG.authority,
  client_id: SPA_CONFIG.client_id,
  redirect_uri: `${origin}/callback`,
  post_logout_redirect_uri: `${origin}/`,
  scope: 'openid profile email offline_access',
  loadUserInfo: true,
  automaticSilentRenew: false,
})

const $ = (id) => document.getElementById(id)

function show(user, status) {
  $('status').textContent = status
  $('profile').hidden = !user
  $('signin').hidden = Boolean(user)
  $('renew').hidden = !user
  $('signout').hidden = !user
  if (user) {
    $('sub').textContent = user.profile.sub
    $('name').textContent = user.profile.name ?? ''
    $('email').textContent = user.profile.email ?? ''
    $('expires').textContent = String(user.expires_at)
  }
  // For the test: what the app holds (a real app would not expose it).
  window.spaUser = user ? {
    access_token: user.access_token, refresh_token: user.refresh_token,
    id_token: user.id_token, profile: user.profile, scope: user.scope,
  } : null
}

async function run(action) {
  try {
    await action()
  } catch (error) {
    $('status').textContent = `error: ${error.message}`
  }
}

$('signin').addEventListener('click', () => run(() => manager.signinRedirect()))
$('signout').addEventListener('click', () => run(() => manager.signoutRedirect()))
$('renew').addEventListener('click', () => run(async () => {
  show(await manager.signinSilent(), 'renewed')
}))

run(async () => {
  if (window.location.pathname === '/callback') {
    await manager.signinRedirectCallback()
    window.history.replaceState({}, '', '/')
  }
  const user = await manager.getUser()
  show(user, user ? 'signed in' : 'signed out')
})
