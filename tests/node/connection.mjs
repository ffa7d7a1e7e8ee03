// The connection set-up every node-opcua test client shares: SignAndEncrypt with
// Basic256Sha256, the client's certificate, the server's certificate pinned in the client's
// own PKI folder (no unknown certificate accepted), user name and password sessions, no
// retries (a test must fail at once, not reconnect).
//
// Options (the JSON the Python test passes on the command line): endpoint, pkiDir,
// serverCertDer, certFile, keyFile, applicationUri.
import fs from "node:fs";
import {
    MessageSecurityMode,
    OPCUAClient,
    SecurityPolicy,
    UserTokenType,
} from "node-opcua-client";
import { OPCUACertificateManager } from "node-opcua-certificate-manager";

export function options() {
    return JSON.parse(process.argv[2]);
}

export async function makeClient(opt, applicationName, requestedSessionTimeout = 60000) {
    const pki = new OPCUACertificateManager({
        rootFolder: opt.pkiDir,
        automaticallyAcceptUnknownCertificate: false,
        disableFileWatchers: true,
    });
    await pki.initialize();
    await pki.trustCertificate(fs.readFileSync(opt.serverCertDer)); // pin the server's certificate
    return OPCUAClient.create({
        applicationName,
        applicationUri: opt.applicationUri,
        securityMode: MessageSecurityMode.SignAndEncrypt,
        securityPolicy: SecurityPolicy.Basic256Sha256,
        certificateFile: opt.certFile,
        privateKeyFile: opt.keyFile,
        clientCertificateManager: pki,
        endpointMustExist: false,
        keepSessionAlive: false,
        connectionStrategy: { maxRetry: 0, initialDelay: 100, maxDelay: 200 },
        requestedSessionTimeout,
    });
}

export function userSession(client, userName, password) {
    return client.createSession({ type: UserTokenType.UserName, userName, password });
}
