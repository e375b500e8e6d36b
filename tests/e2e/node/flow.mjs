// End-to-end check of the provider with openid-client, the certified OpenID
// relying party library: discovery, authorization code flow with PKCE S256,
// state and nonce (the browser part scripted with fetch), ID token validation,
// UserInfo, refresh token rotation and revocation.
//
// Environment: ISSUER, CLIENT_ID, CLIENT_SECRET (empty: public client),
// REDIRECT_URI, USERNAME, PASSWORD.
// Output: one JSON object on stdout; exit 0 on success, 1 with a message on
// stderr on any failure.

import { createHash } from 'node:crypto'
import process from 'node:process'

import * as client from 'openid-client'

import { FlowError, check, describeError, env, fail, step } from './support.mjs'
import { browse } from './useragent.mjs'

const SCOPE = 'openid profile email offline_access'

function b64url(buffer) {
  return Buffer.from(buffer).toString('base64url')
}

function decodeJwtPart(jwt, index) {
  return JSON.parse(Buffer.from(jwt.split('.')[index], 'base64url').toString('utf8'))
}

// OpenID Connect Core 1.0 §3.1.3.6: left-most half of the hash of the access
// token, with the hash of the ID token's JWS alg (SHA-512 for EdDSA/Ed25519).
function expectedAtHash(accessToken, alg) {
  const hash = { ES256: 'sha256', RS256: 'sha256', PS256: 'sha256',
    ES384: 'sha384', RS384: 'sha384', PS384: 'sha384',
    ES512: 'sha512', RS512: 'sha512', PS512: 'sha512', EdDSA: 'sha512', Ed25519: 'sha512' }[alg]
  check(hash, `no at_hash hash function known for alg ${alg}`)
  const digest = createHash(hash).update(accessToken, 'ascii').digest()
  return b64url(digest.subarray(0, digest.length / 2))
}

// --- the relying party ---------------------------------------------------------

async function main() {
  const issuer = env('ISSUER')
  const clientId = env('CLIENT_ID')
  const clientSecret = env('CLIENT_SECRET', { optional: true })
  const redirectUri = env('REDIRECT_URI')
  const username = env('USERNAME')
  const password = env('PASSWORD')
  const isPublic = !clientSecret

  const config = await step('discovery', () => client.discovery(
    new URL(issuer),
    clientId,
    { redirect_uris: [redirectUri], response_types: ['code'] },
    isPublic ? client.None() : client.ClientSecretBasic(clientSecret),
    // Plain http on 127.0.0.1 only; validate ID token signatures against the JWKS.
    { execute: [client.allowInsecureRequests, client.enableNonRepudiationChecks] },
  ))
  const metadata = config.serverMetadata()
  check(metadata.issuer === issuer, `discovery issuer ${metadata.issuer} != ${issuer}`)
  check(metadata.supportsPKCE('S256'), 'discovery does not list PKCE S256')

  // Authorization request: PKCE S256 with a fresh verifier, state and nonce.
  const codeVerifier = client.randomPKCECodeVerifier()
  const codeChallenge = await client.calculatePKCECodeChallenge(codeVerifier)
  const state = client.randomState()
  const nonce = client.randomNonce()
  const authorizationUrl = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: SCOPE,
    code_challenge: codeChallenge,
    code_challenge_method: 'S256',
    state,
    nonce,
  })

  const { callback, pages } = await step('browser login', () => browse(authorizationUrl, {
    issuer, redirectUri, username, password,
  }))
  check(callback.searchParams.get('iss') === issuer,
    `authorization response iss=${callback.searchParams.get('iss')} (RFC 9207), expected ${issuer}`)

  // Token request; the library validates state, iss (RFC 9207), the ID token
  // (signature via the JWKS, iss, aud, exp, iat, nonce) and the token type.
  const tokens = await step('authorizationCodeGrant', () => client.authorizationCodeGrant(
    config, callback, {
      pkceCodeVerifier: codeVerifier,
      expectedState: state,
      expectedNonce: nonce,
      idTokenExpected: true,
    },
  ))
  check(tokens.token_type?.toLowerCase() === 'bearer', `token_type ${tokens.token_type}`)
  check(tokens.access_token, 'no access_token')
  check(tokens.refresh_token, 'no refresh_token although offline_access was requested')
  const claims = tokens.claims()
  check(claims, 'no id_token')
  check(claims.nonce === nonce, 'nonce mismatch')
  const idHeader = decodeJwtPart(tokens.id_token, 0)
  if (claims.at_hash !== undefined) {
    check(claims.at_hash === expectedAtHash(tokens.access_token, idHeader.alg),
      `at_hash ${claims.at_hash} does not match the access token (alg ${idHeader.alg})`)
  }
  const sub = claims.sub

  const userinfo = await step('fetchUserInfo', () => client.fetchUserInfo(
    config, tokens.access_token, sub))
  check(userinfo.sub === sub, 'userinfo sub mismatch')

  // Refresh: the refresh token rotates and the new ID token names the same sub.
  const refreshed = await step('refreshTokenGrant', () => client.refreshTokenGrant(
    config, tokens.refresh_token))
  check(refreshed.access_token, 'refresh: no access_token')
  check(refreshed.refresh_token, 'refresh: no new refresh_token')
  check(refreshed.refresh_token !== tokens.refresh_token,
    'refresh: the refresh token was not rotated')
  const refreshedClaims = refreshed.claims()
  check(refreshedClaims, 'refresh: no new id_token')
  check(refreshedClaims.sub === sub,
    `refresh: id_token sub ${refreshedClaims.sub} differs from ${sub}`)
  check(refreshed.id_token !== tokens.id_token, 'refresh: the same id_token was returned')

  const userinfoAfterRefresh = await step('fetchUserInfo (refreshed token)',
    () => client.fetchUserInfo(config, refreshed.access_token, sub))

  // Revocation (RFC 7009) of the current refresh token; a further refresh fails.
  await step('tokenRevocation', () => client.tokenRevocation(
    config, refreshed.refresh_token, { token_type_hint: 'refresh_token' }))
  let refreshAfterRevocation
  try {
    await client.refreshTokenGrant(config, refreshed.refresh_token)
    fail('refresh with the revoked refresh token succeeded')
  } catch (error) {
    if (error instanceof FlowError) throw error
    check(error instanceof client.ResponseBodyError && error.error === 'invalid_grant',
      `refresh after revocation: expected invalid_grant, got ${describeError(error)}`)
    refreshAfterRevocation = { status: error.status, error: error.error }
  }

  return {
    ok: true,
    issuer: metadata.issuer,
    client_type: isPublic ? 'public' : 'confidential',
    sub,
    pages,
    id_token: {
      alg: idHeader.alg,
      kid: idHeader.kid,
      claims,
    },
    userinfo,
    userinfo_after_refresh: userinfoAfterRefresh,
    refresh: {
      rotated: true,
      id_token_sub: refreshedClaims.sub,
      scope: refreshed.scope,
    },
    refresh_after_revocation: refreshAfterRevocation,
  }
}

try {
  const result = await main()
  process.stdout.write(`${JSON.stringify(result)}\n`)
  process.exitCode = 0
} catch (error) {
  process.stderr.write(`openid-client flow FAILED: ${describeError(error)}\n`)
  if (!(error instanceof FlowError) && error.stack) process.stderr.write(`${error.stack}\n`)
  process.exitCode = 1
}
