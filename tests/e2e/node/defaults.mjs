// openid-client 6 as its documentation starts: `discovery(server, clientId,
// clientSecret)` and nothing else, so its defaults hold: the secret is sent
// by ClientSecretPost, and ID tokens are expected signed RS256 (the
// library's default id_token_signed_response_alg). The only option is
// allowInsecureRequests, because the test provider is plain http on
// 127.0.0.1. Then: login (code with PKCE S256 and a nonce), refresh, the
// RP-initiated logout URL (buildEndSessionUrl) followed by the browser, and a
// prompt=none request answered login_required: the SSO session ended.
//
// Environment: ISSUER, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI,
// POST_LOGOUT_REDIRECT_URI, USERNAME, PASSWORD.
// Output: one JSON object on stdout; exit 0 on success, 1 with a message on
// stderr on any failure.

import process from 'node:process'

import * as client from 'openid-client'

import { FlowError, check, describeError, env, step } from './support.mjs'
import { CookieJar, browse } from './useragent.mjs'

async function main() {
  const issuer = env('ISSUER')
  const redirectUri = env('REDIRECT_URI')
  const postLogoutRedirectUri = env('POST_LOGOUT_REDIRECT_URI')
  const username = env('USERNAME')
  const password = env('PASSWORD')

  const config = await step('discovery', () => client.discovery(
    new URL(issuer), env('CLIENT_ID'), env('CLIENT_SECRET'), undefined,
    { execute: [client.allowInsecureRequests] },
  ))

  const codeVerifier = client.randomPKCECodeVerifier()
  const nonce = client.randomNonce()
  const authorizationUrl = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: 'openid email offline_access',
    code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    nonce,
  })
  const jar = new CookieJar()
  const { callback } = await step('browser login', () => browse(authorizationUrl, {
    issuer, redirectUri, username, password, jar,
  }))
  const tokens = await step('authorizationCodeGrant', () => client.authorizationCodeGrant(
    config, callback, { pkceCodeVerifier: codeVerifier, expectedNonce: nonce,
      idTokenExpected: true },
  ))
  const claims = tokens.claims()
  const idTokenAlg = JSON.parse(Buffer.from(tokens.id_token.split('.')[0], 'base64url')).alg
  check(tokens.refresh_token, 'no refresh_token although offline_access was granted')

  const refreshed = await step('refreshTokenGrant', () => client.refreshTokenGrant(
    config, tokens.refresh_token))
  check(refreshed.claims()?.sub === claims.sub, 'refresh: the ID token names another sub')
  const userinfo = await step('fetchUserInfo', () => client.fetchUserInfo(
    config, refreshed.access_token, claims.sub))

  const endSessionUrl = client.buildEndSessionUrl(config, {
    id_token_hint: refreshed.id_token,
    post_logout_redirect_uri: postLogoutRedirectUri,
  })
  const { callback: loggedOut } = await step('browser logout', () => browse(endSessionUrl, {
    issuer, redirectUri: postLogoutRedirectUri, username, password, jar,
  }))

  // The SSO session is gone: a request that may not show a page fails.
  const silentUrl = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri, scope: 'openid', prompt: 'none',
    code_challenge: await client.calculatePKCECodeChallenge(client.randomPKCECodeVerifier()),
    code_challenge_method: 'S256',
  })
  const { callback: silent } = await step('prompt=none after logout', () => browse(silentUrl, {
    issuer, redirectUri, username, password, jar,
  }))

  return {
    ok: true,
    token_endpoint_auth_method: config.clientMetadata().token_endpoint_auth_method ?? null,
    sub: claims.sub,
    aud: claims.aud,
    nonce: claims.nonce,
    id_token_alg: idTokenAlg,
    refresh_rotated: refreshed.refresh_token !== tokens.refresh_token,
    userinfo,
    end_session_url: endSessionUrl.href,
    logged_out_at: loggedOut.href,
    after_logout: Object.fromEntries(silent.searchParams),
  }
}

try {
  process.stdout.write(`${JSON.stringify(await main())}\n`)
  process.exitCode = 0
} catch (error) {
  process.stderr.write(`openid-client defaults FAILED: ${describeError(error)}\n`)
  if (!(error instanceof FlowError) && error.stack) process.stderr.write(`${error.stack}\n`)
  process.exitCode = 1
}
