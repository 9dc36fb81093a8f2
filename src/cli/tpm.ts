/**
 * `ztmesh tpm …`: the device's TPM from the command line. The TPM is the one `--tcti` names, else
 * `TPM2TOOLS_TCTI`, `TCTI`, `/dev/tpmrm0`. Quotes travel as the four files of tpm2-tools:
 *
 * ```text
 * quote.msg   TPMS_ATTEST          quote.sig   TPMT_SIGNATURE
 * pcrs.bin    the quoted PCR values (tpm2_quote -o)            ak.pub.pem  the attestation key, PEM
 * ```
 *
 * so `tpm2_checkquote -u ak.pub.pem -m quote.msg -s quote.sig -f pcrs.bin -g sha256 -q NONCE`
 * checks a ztmesh quote, and `tpm verify-quote` checks one of `tpm2_quote`.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'

import { checkPcrPolicy, verifyQuote, type PcrPolicy, type QuoteFiles } from '../attestation/index.js'
import { createError, ZtError } from '../errors.js'
import { checkPcrSelection } from '../protocol/quote.js'
import { writeFileAtomic } from '../storage/files.js'
import { Tpm } from '../primitives/tpm/index.js'

/** The file names of a quote directory. */
const QUOTE_FILES = { attest: 'quote.msg', signature: 'quote.sig', pcrValues: 'pcrs.bin', akPublicPem: 'ak.pub.pem' } as const

const out = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`)

const TPM_COMMANDS: Record<string, (args: string[]) => Promise<void>> = {
  /** `tpm info [--tcti T]`: manufacturer, vendor, firmware, and whether ztmesh can use it. */
  async info(args) {
    const { values } = parseArgs({ args, options: { tcti: { type: 'string' } }, strict: true })
    out(Tpm.open(values.tcti).info())
  },

  /**
   * `tpm quote --nonce HEX --pcrs 0,1,2,3,7 --out DIR [--ak FILE] [--tcti T]`: quotes the SHA-256
   * PCRs over the nonce. The attestation key is created for this quote, or taken from `--ak`
   * (and created there when the file does not exist yet).
   */
  async quote(args) {
    const { values } = parseArgs({ args, options: { nonce: { type: 'string' }, pcrs: { type: 'string' }, out: { type: 'string' }, ak: { type: 'string' }, tcti: { type: 'string' } }, strict: true })
    const nonce = hexOption(values.nonce, 'nonce')
    const pcrs = pcrSelection(values.pcrs ?? '0,1,2,3,7')
    const dir = required(values.out, 'out')
    const tpm = Tpm.open(values.tcti)
    let akBlob: Buffer
    if (values.ak !== undefined && existsSync(values.ak)) akBlob = readFileSync(values.ak)
    else {
      akBlob = await tpm.createAttestationKey()
      if (values.ak !== undefined) writeFileAtomic(values.ak, akBlob)
    }
    const quote = await tpm.quote(akBlob, nonce, pcrs)
    mkdirSync(dir, { recursive: true, mode: 0o700 })
    for (const [field, name] of Object.entries(QUOTE_FILES)) writeFileAtomic(join(dir, name), quote[field as keyof typeof QUOTE_FILES])
    out({ out: dir, nonce: nonce.toString('hex'), pcrs, files: Object.values(QUOTE_FILES) })
  },

  /**
   * `tpm verify-quote --in DIR --nonce HEX [--policy FILE]`: prints what the quote says and exits
   * 0, or prints `{code, message}` and exits 1. The policy is `{"index": "sha256 hex"}`.
   */
  async 'verify-quote'(args) {
    const { values } = parseArgs({ args, options: { in: { type: 'string' }, nonce: { type: 'string' }, policy: { type: 'string' } }, strict: true })
    const dir = required(values.in, 'in')
    const nonce = hexOption(values.nonce, 'nonce')
    const policy = values.policy === undefined ? undefined : pcrPolicy(values.policy)
    const read = (name: string) => {
      const path = join(dir, name)
      if (!existsSync(path)) throw createError('ERR_INVALID_ARG', `--in ${dir} holds no ${name}`)
      return readFileSync(path)
    }
    const quote: QuoteFiles = {
      attest: read(QUOTE_FILES.attest),
      signature: read(QUOTE_FILES.signature),
      pcrValues: read(QUOTE_FILES.pcrValues),
      akPublicPem: read(QUOTE_FILES.akPublicPem).toString('utf8'),
    }
    try {
      out(verifyQuote(quote, nonce, policy))
    } catch (error) {
      // The verdict is the output: a refusal goes to stdout like a verified quote, with exit code 1.
      if (!(error instanceof ZtError)) throw error
      out({ code: error.code, message: error.message })
      process.exitCode = 1
    }
  },
}

/** `ztmesh tpm <info|quote|verify-quote> …` */
export async function tpm(args: string[]): Promise<void> {
  const [sub, ...rest] = args
  const run = sub === undefined ? undefined : TPM_COMMANDS[sub]
  if (run === undefined) throw createError('ERR_INVALID_ARG', `usage: ztmesh tpm <${Object.keys(TPM_COMMANDS).join('|')}> [options]`)
  await run(rest)
}

function required(value: string | undefined, name: string): string {
  if (value === undefined || value === '') throw createError('ERR_INVALID_ARG', `--${name} is required`)
  return value
}

function hexOption(value: string | undefined, name: string): Buffer {
  const text = required(value, name).replace(/^0x/i, '')
  if (!/^(?:[0-9a-fA-F]{2})+$/.test(text)) throw createError('ERR_INVALID_ARG', `--${name} must be hex digits, two per byte`)
  return Buffer.from(text, 'hex')
}

/** `0,1,2,3,7` or `sha256:0,1,2,3,7` (SHA-256 is the only bank ztmesh quotes). */
function pcrSelection(text: string): number[] {
  const list = text.replace(/^sha256:/i, '')
  const pcrs = list.split(',').map((p) => (/^\d{1,2}$/.test(p.trim()) ? Number(p.trim()) : Number.NaN))
  try {
    if (pcrs.some(Number.isNaN)) throw createError('ERR_INVALID_ARG', 'not a number')
    return checkPcrSelection(pcrs)
  } catch {
    throw createError('ERR_INVALID_ARG', '--pcrs must be distinct SHA-256 PCR indices 0..23, comma-separated (e.g. 0,1,2,3,7)')
  }
}

/** A policy file: `{"0": "<64 hex digits>", "7": "…"}`; `ERR_INVALID_ARG` when it is not one. */
function pcrPolicy(path: string): PcrPolicy {
  let value: unknown
  try {
    value = JSON.parse(readFileSync(path, 'utf8'))
  } catch (error) {
    throw createError('ERR_INVALID_ARG', `--policy ${path} is not a readable JSON file`, { cause: error })
  }
  return checkPcrPolicy(value)
}
