// Helpers shared by the end-to-end scripts: failing with a clear message and
// reading the environment the pytest side sets.
import process from 'node:process'

export class FlowError extends Error {}

export function fail(message) {
  throw new FlowError(message)
}

export function check(condition, message) {
  if (!condition) fail(message)
}

export function env(name, { optional = false } = {}) {
  const value = process.env[name] ?? ''
  if (!value && !optional) fail(`environment variable ${name} is required`)
  return value
}

// A library error with its OAuth fields (error, error_description, status).
export function describeError(error) {
  if (error instanceof FlowError) return error.message
  const parts = [`${error.name}: ${error.message}`]
  if (error.code) parts.push(`code=${error.code}`)
  if (error.error) parts.push(`error=${error.error}`)
  if (error.error_description) parts.push(`error_description=${error.error_description}`)
  if (error.status) parts.push(`status=${error.status}`)
  if (error.cause && !(error.cause instanceof Error)) {
    try {
      parts.push(`cause=${JSON.stringify(error.cause)}`)
    } catch {
      // not serialisable
    }
  } else if (error.cause) {
    parts.push(`cause=${error.cause.name}: ${error.cause.message}`)
  }
  return parts.join(' ')
}

export async function step(name, fn) {
  try {
    return await fn()
  } catch (error) {
    const wrapped = new FlowError(`step "${name}" failed: ${describeError(error)}`)
    throw wrapped
  }
}
