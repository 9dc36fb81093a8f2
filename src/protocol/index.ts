/**
 * What the device and the CA share: the core's protocol codecs and rules, wrapped for
 * TypeScript. This folder imports neither `identity/` nor `ca/`.
 */
export { signObject, verifyObject, signedObjectDigest, signedObjectLabels, type ObjectSigner, type VerifiedObject } from './signed.js'
export { signPresenceLease, verifyPresenceLease, MAX_LEASE_MS, type PresenceLease, type VerifiedPresenceLease } from './presence.js'
export { checkDeviceId, checkTenant, checkRoles, normalizeKeyDigest, normalizeSerial } from './ids.js'
export {
  checkEnrollAnswer,
  decodeEnrollmentToken,
  decodeEnrollRequest,
  decodeEnrollResponse,
  decodeNonceAnswer,
  decodeNonceRequest,
  decodeRotationRequest,
  encodeEnrollRequest,
  encodeEnrollResponse,
  encodeNonceAnswer,
  encodeNonceRequest,
  encodeRotationRequest,
  enrollRequestFor,
  ENROLLMENT_ROUTES,
  generateEnrollmentToken,
  nonceRequestByCertificate,
  nonceRequestFor,
  nonceRequestMessage,
  rotationMessage,
  verifyEnrollmentProof,
  verifyNonceProof,
} from './enroll.js'
export type { AcceptedAnswer, DeviceConfig, EnrollmentTokenFacts, EnrollRequest, EnrollResponse, NewEnrollmentToken, NonceAnswer, NonceRequest, RotationRequest } from './enroll.js'
export { checkPcrSelection, decodeQuoteAnswer, decodeQuoteEvidence, decodeQuoteRequest, encodeQuoteAnswer, encodeQuoteRequest, MAX_QUOTE_LINE } from './quote.js'
export type { BoundQuote, QuoteAnswer, QuoteEvidence, QuoteRequest } from './quote.js'
export { sdpFingerprint, SIGNAL_LIMITS, signAnswer, signCandidate, signOffer, SignalVerifier } from './signal.js'
export type {
  AnswerBody,
  AnswerInit,
  CandidateBody,
  CandidateInit,
  OfferInit,
  SignalBody,
  SignalCheckOptions,
  SignalVerdict,
  SignalVerifierInit,
  VerifiedAnswer,
  VerifiedCandidate,
  VerifiedOffer,
} from './signal.js'
export { assemble, hubChallenge, prepareAnswer, prepareObject, prepareOffer, preparePresenceLease, toBeSigned, verifyHubChallenge } from './prepared.js'
export type { PreparedObject } from './prepared.js'
