// The Californium test peer of streamapp_harness/californium.py: plain CoAP and DTLS endpoints set up like
// cf-plugtest-server 3.14.0 (not on Maven Central), its resources that take PUT/POST, and a record of every
// request in --received. Compiled once with javac against jvm/californium/pom.xml's jars; test
// infrastructure only, never part of the streamapp package.
import java.io.File;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.security.KeyFactory;
import java.security.Principal;
import java.security.PrivateKey;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.security.spec.InvalidKeySpecException;
import java.security.spec.PKCS8EncodedKeySpec;
import java.util.Arrays;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.jar.JarFile;

import org.eclipse.californium.core.CoapResource;
import org.eclipse.californium.core.CoapServer;
import org.eclipse.californium.core.coap.CoAP.ResponseCode;
import org.eclipse.californium.core.coap.MediaTypeRegistry;
import org.eclipse.californium.core.coap.Request;
import org.eclipse.californium.core.config.CoapConfig;
import org.eclipse.californium.core.network.CoapEndpoint;
import org.eclipse.californium.core.network.Exchange;
import org.eclipse.californium.core.network.interceptors.MessageInterceptorAdapter;
import org.eclipse.californium.core.server.resources.CoapExchange;
import org.eclipse.californium.elements.config.CertificateAuthenticationMode;
import org.eclipse.californium.elements.config.Configuration;
import org.eclipse.californium.elements.config.UdpConfig;
import org.eclipse.californium.scandium.DTLSConnector;
import org.eclipse.californium.scandium.config.DtlsConfig;
import org.eclipse.californium.scandium.config.DtlsConnectorConfig;
import org.eclipse.californium.scandium.dtls.CertificateType;
import org.eclipse.californium.scandium.dtls.cipher.CipherSuite;
import org.eclipse.californium.scandium.dtls.pskstore.MultiPskFileStore;
import org.eclipse.californium.scandium.dtls.x509.SingleCertificateProvider;
import org.eclipse.californium.scandium.dtls.x509.StaticNewAdvancedCertificateVerifier;

public class StreamappCaliforniumPeer {

    static {
        CoapConfig.register();
        UdpConfig.register();
        DtlsConfig.register();
    }

    /** cf-plugtest-server's preselected suites (PlugtestServer.PRESELECTED_CIPHER_SUITES, 3.14.0). */
    static final List<CipherSuite> PLUGTEST_SUITES = Arrays.asList(
        CipherSuite.TLS_PSK_WITH_AES_128_CCM_8, CipherSuite.TLS_ECDHE_PSK_WITH_AES_128_CCM_8_SHA256,
        CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8, CipherSuite.TLS_PSK_WITH_AES_128_CBC_SHA256,
        CipherSuite.TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256,
        CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
        CipherSuite.TLS_PSK_WITH_AES_128_GCM_SHA256, CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256);

    /** cf-plugtest-server's defaults (PlugtestServer.DEFAULTS, 3.14.0) for CoAP over UDP and DTLS. */
    static final Configuration.DefinitionsProvider DEFAULTS = config -> {
        config.set(CoapConfig.MAX_RESOURCE_BODY_SIZE, 8192);
        config.set(CoapConfig.MAX_MESSAGE_SIZE, 64);
        config.set(CoapConfig.PREFERRED_BLOCK_SIZE, 64);
        config.set(CoapConfig.MAX_ACTIVE_PEERS, 10000);
        config.set(DtlsConfig.DTLS_RECOMMENDED_CIPHER_SUITES_ONLY, false);
        config.set(DtlsConfig.DTLS_AUTO_HANDSHAKE_TIMEOUT, null, TimeUnit.SECONDS);
        config.set(DtlsConfig.DTLS_CONNECTION_ID_LENGTH, 6);
        config.set(DtlsConfig.DTLS_PRESELECTED_CIPHER_SUITES, PLUGTEST_SUITES);
        config.set(DtlsConfig.DTLS_MAX_CONNECTIONS, 10000);
        config.set(DtlsConfig.DTLS_REMOVE_STALE_DOUBLE_PRINCIPALS, false);
        config.set(DtlsConfig.DTLS_MAC_ERROR_FILTER_QUIET_TIME, 4, TimeUnit.SECONDS);
        config.set(DtlsConfig.DTLS_MAC_ERROR_FILTER_THRESHOLD, 8);
        config.set(DtlsConfig.DTLS_RETRANSMISSION_TIMEOUT, 3, TimeUnit.SECONDS);
        config.set(DtlsConfig.DTLS_ADDITIONAL_ECC_TIMEOUT, 8, TimeUnit.SECONDS);
    };

    static OutputStream received;

    static String json(String s) {
        if (s == null) {
            return "null";
        }
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') {
                b.append('\\').append(c);
            } else if (c < 0x20 || c > 0x7e) {
                b.append(String.format("\\u%04x", (int) c));
            } else {
                b.append(c);
            }
        }
        return b.append('"').toString();
    }

    /** One JSON line per request: "message" as it arrived, "request" as a resource handled it. */
    static synchronized void record(String kind, Request r, String resource) {
        Principal peer = r.getSourceContext().getPeerIdentity();
        int cf = r.getOptions().getContentFormat();
        String block1 = r.getOptions().hasBlock1() ? r.getOptions().getBlock1().toString() : null;
        String line = "{\"kind\":" + json(kind)
            + ",\"scheme\":" + json(r.getScheme())
            + ",\"type\":" + json(r.getType().name())
            + ",\"method\":" + json(r.getCode().name())
            + ",\"mid\":" + r.getMID()
            + ",\"path\":" + json("/" + r.getOptions().getUriPathString())
            + ",\"resource\":" + json(resource)
            + ",\"content_format\":" + (cf == MediaTypeRegistry.UNDEFINED ? "null" : Integer.toString(cf))
            + ",\"block1\":" + json(block1)
            + ",\"peer\":" + json(peer == null ? null : peer.getName())
            + ",\"payload\":" + json(Base64.getEncoder().encodeToString(r.getPayload()))
            + "}\n";
        try {
            received.write(line.getBytes(StandardCharsets.UTF_8));
            received.flush();
        } catch (IOException e) {
            e.printStackTrace();
        }
    }

    /** Records each request it is handed (after block-wise reassembly), then answers as its subclass does. */
    static class Recorded extends CoapResource {
        Recorded(String name) {
            super(name);
        }

        @Override
        public void handleRequest(Exchange exchange) {
            record("request", exchange.getRequest(), getURI());
            super.handleRequest(exchange);
        }
    }

    /** As plugtest's /test (DefaultTest): PUT 2.04 (4.12 with If-None-Match), POST 2.01, DELETE 2.02. */
    static class Test extends Recorded {
        Test() {
            super("test");
            getAttributes().setTitle("Default test resource");
        }

        @Override
        public void handleGET(CoapExchange exchange) {
            Request request = exchange.advanced().getRequest();
            exchange.respond(ResponseCode.CONTENT, "Type: " + request.getType() + "\nCode: "
                + request.getCode() + "\nMID: " + request.getMID(), MediaTypeRegistry.TEXT_PLAIN);
        }

        @Override
        public void handlePOST(CoapExchange exchange) {
            exchange.setLocationPath("/location1/location2/location3");
            exchange.respond(ResponseCode.CREATED);
        }

        @Override
        public void handlePUT(CoapExchange exchange) {
            boolean ifNoneMatch = exchange.getRequestOptions().hasIfNoneMatch();
            exchange.respond(ifNoneMatch ? ResponseCode.PRECONDITION_FAILED : ResponseCode.CHANGED);
        }

        @Override
        public void handleDELETE(CoapExchange exchange) {
            exchange.respond(ResponseCode.DELETED);
        }
    }

    /**
     * As plugtest's /create1 (PUT with a Content-Format: 2.01, stored) and /large-update (PUT with a
     * Content-Format: 2.04, stored); without a Content-Format 4.00. GET reads the body back.
     */
    static class Store extends Recorded {
        final ResponseCode onPut;
        byte[] data;
        int format = MediaTypeRegistry.TEXT_PLAIN;

        Store(String name, ResponseCode onPut, byte[] initial) {
            super(name);
            this.onPut = onPut;
            this.data = initial;
        }

        @Override
        public synchronized void handleGET(CoapExchange exchange) {
            if (data == null) {
                exchange.respond(ResponseCode.NOT_FOUND);
            } else {
                exchange.respond(ResponseCode.CONTENT, data, format);
            }
        }

        @Override
        public synchronized void handlePUT(CoapExchange exchange) {
            if (!exchange.getRequestOptions().hasContentFormat()) {
                exchange.respond(ResponseCode.BAD_REQUEST, "Content-Format not set");
                return;
            }
            data = exchange.getRequestPayload();
            format = exchange.getRequestOptions().getContentFormat();
            exchange.respond(onPut);
        }
    }

    /** As plugtest's /large-create: POST with a Content-Format: 2.01 and a new child; PUT: 4.05. */
    static class LargeCreate extends Recorded {
        int counter;

        LargeCreate() {
            super("large-create");
        }

        @Override
        public synchronized void handlePOST(CoapExchange exchange) {
            if (!exchange.getRequestOptions().hasContentFormat()) {
                exchange.respond(ResponseCode.BAD_REQUEST, "Content-Format not set");
                return;
            }
            Store child = new Store(Integer.toString(++counter), ResponseCode.CHANGED,
                exchange.getRequestPayload());
            child.format = exchange.getRequestOptions().getContentFormat();
            add(child);
            exchange.setLocationPath(child.getURI());
            exchange.respond(ResponseCode.CREATED);
        }
    }

    /** As plugtest's /echo: a POST of text/plain, octet-stream or no format is echoed (2.04); else 4.06. */
    static class Echo extends Recorded {
        Echo() {
            super("echo");
        }

        @Override
        public void handlePOST(CoapExchange exchange) {
            int format = exchange.getRequestOptions().getContentFormat();
            if (format != MediaTypeRegistry.UNDEFINED && format != MediaTypeRegistry.TEXT_PLAIN
                    && format != MediaTypeRegistry.APPLICATION_OCTET_STREAM) {
                exchange.respond(ResponseCode.NOT_ACCEPTABLE);
                return;
            }
            int answer = format == MediaTypeRegistry.UNDEFINED
                ? MediaTypeRegistry.APPLICATION_OCTET_STREAM : format;
            exchange.respond(ResponseCode.CHANGED, exchange.getRequestPayload(), answer);
        }
    }

    static Certificate[] certificates(String path) throws Exception {
        try (InputStream in = Files.newInputStream(Paths.get(path))) {
            CertificateFactory factory = CertificateFactory.getInstance("X.509");
            return factory.generateCertificates(in).toArray(new Certificate[0]);
        }
    }

    static PrivateKey privateKey(String path) throws Exception {
        String pem = new String(Files.readAllBytes(Paths.get(path)), StandardCharsets.US_ASCII);
        String body = pem.replaceAll("-----[A-Z ]+-----", "").replaceAll("\\s", "");
        PKCS8EncodedKeySpec spec = new PKCS8EncodedKeySpec(Base64.getDecoder().decode(body));
        try {
            return KeyFactory.getInstance("EC").generatePrivate(spec);
        } catch (InvalidKeySpecException e) {
            return KeyFactory.getInstance("RSA").generatePrivate(spec);
        }
    }

    /** The Bundle-Version of californium-core's jar (it has no Maven pom.properties). */
    static String version() {
        try {
            File jar = new File(CoapServer.class.getProtectionDomain().getCodeSource().getLocation().toURI());
            try (JarFile file = new JarFile(jar)) {
                return file.getManifest().getMainAttributes().getValue("Bundle-Version");
            }
        } catch (Exception e) {
            return "unknown";
        }
    }

    public static void main(String[] argv) throws Exception {
        Map<String, String> args = new HashMap<>();
        for (int i = 0; i + 1 < argv.length; i += 2) {
            args.put(argv[i], argv[i + 1]);
        }
        String host = args.get("--host");
        received = new FileOutputStream(args.get("--received"), true);
        Configuration config = Configuration.createWithFile(new File(args.get("--properties")),
            "Californium CoAP properties of streamapp's test peer (cf-plugtest-server's defaults)", DEFAULTS);
        CoapServer server = new CoapServer(config);

        CoapEndpoint.Builder plain = new CoapEndpoint.Builder();
        plain.setConfiguration(config);
        plain.setInetSocketAddress(new InetSocketAddress(host, Integer.parseInt(args.get("--coap-port"))));
        server.addEndpoint(plain.build());

        DtlsConnectorConfig.Builder dtls = DtlsConnectorConfig.builder(config);
        dtls.setAddress(new InetSocketAddress(host, Integer.parseInt(args.get("--coaps-port"))));
        dtls.set(DtlsConfig.DTLS_ROLE, DtlsConfig.DtlsRole.SERVER_ONLY);
        MultiPskFileStore psk = new MultiPskFileStore();
        psk.loadPskCredentials(args.get("--psk-file"));
        dtls.setAdvancedPskStore(psk);
        if (args.containsKey("--cert")) {
            String mode = args.get("--client-auth");
            dtls.set(DtlsConfig.DTLS_CLIENT_AUTHENTICATION_MODE, CertificateAuthenticationMode.valueOf(mode));
            dtls.setCertificateIdentityProvider(new SingleCertificateProvider(privateKey(args.get("--key")),
                certificates(args.get("--cert")), CertificateType.X_509, CertificateType.RAW_PUBLIC_KEY));
            StaticNewAdvancedCertificateVerifier.Builder verifier =
                StaticNewAdvancedCertificateVerifier.builder();
            if (args.containsKey("--trust")) {
                verifier.setTrustedCertificates(certificates(args.get("--trust")));
            }
            verifier.setTrustAllRPKs();
            dtls.setAdvancedCertificateVerifier(verifier.build());
        }
        CoapEndpoint.Builder secure = new CoapEndpoint.Builder();
        secure.setConfiguration(config);
        secure.setConnector(new DTLSConnector(dtls.build()));
        server.addEndpoint(secure.build());

        byte[] initial = new byte[5 * 256];
        Arrays.fill(initial, (byte) '.');
        server.add(new Test(), new Store("create1", ResponseCode.CREATED, null),
            new Store("large-update", ResponseCode.CHANGED, initial), new LargeCreate(), new Echo());
        server.getEndpoints().forEach(e -> e.addInterceptor(new MessageInterceptorAdapter() {
            @Override
            public void receiveRequest(Request request) {
                record("message", request, null);
            }
        }));
        server.start();
        StringBuilder ready = new StringBuilder("READY californium=" + version());
        server.getEndpoints().forEach(e -> ready.append(' ').append(e.getUri()));
        System.out.println(ready);
        System.out.flush();
    }
}
