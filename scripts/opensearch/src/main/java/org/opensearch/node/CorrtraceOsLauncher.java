package org.opensearch.node;

import org.opensearch.common.logging.LogConfigurator;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.plugins.Plugin;
import org.opensearch.transport.Netty4Plugin;

import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * Runs one real OpenSearch node (server + Netty4 HTTP/transport) in this JVM, with plugins
 * taken from the classpath instead of a distribution's modules dir: the same protected
 * Node constructor the test framework's MockNode uses. GET / (RestMainAction) is part of
 * the OpenSearch server jar, so no extra plugin is needed. No security plugin: plain HTTP.
 *
 * Usage: java -cp launcher.jar:deps... org.opensearch.node.CorrtraceOsLauncher key=value...
 * Each key=value is an OpenSearch node setting; path.home is required.
 */
public final class CorrtraceOsLauncher extends Node {

    static final List<Class<? extends Plugin>> PLUGINS = List.of(Netty4Plugin.class);

    private CorrtraceOsLauncher(Environment environment, Collection<Class<? extends Plugin>> plugins) {
        super(environment, plugins, true);
    }

    public static void main(String[] args) throws Exception {
        Settings.Builder builder = Settings.builder()
            .put("cluster.name", "corrtrace-test")
            .put("node.name", "corrtrace-os")
            .put("network.host", "127.0.0.1")
            .put("http.port", "9201")
            .put("transport.port", "9400-9499")
            .put("discovery.type", "single-node")
            // tests create many short-lived indices and may delete them by pattern
            .put("action.destructive_requires_name", false)
            // a nearly full CI disk must not flip indices to read-only
            .put("cluster.routing.allocation.disk.threshold_enabled", false);
        for (String arg : args) {
            int eq = arg.indexOf('=');
            if (eq <= 0) {
                throw new IllegalArgumentException("expected key=value, got [" + arg + "]");
            }
            builder.put(arg.substring(0, eq), arg.substring(eq + 1));
        }
        Settings input = builder.build();
        String home = input.get("path.home");
        if (home == null) {
            throw new IllegalArgumentException("path.home=... is required");
        }
        Path configDir = Path.of(home).resolve("config");
        Files.createDirectories(configDir);
        try (InputStream in = CorrtraceOsLauncher.class.getResourceAsStream("/corrtrace-os-log4j2.properties")) {
            Files.copy(in, configDir.resolve("log4j2.properties"), StandardCopyOption.REPLACE_EXISTING);
        }

        LogConfigurator.registerErrorListener();
        LogConfigurator.setNodeName(input.get("node.name"));
        Environment environment = InternalSettingsPreparer.prepareEnvironment(input, Map.of(), configDir, () -> input.get("node.name"));
        LogConfigurator.configure(environment);

        Node node;
        try {
            node = new CorrtraceOsLauncher(environment, PLUGINS);
        } catch (Throwable t) {
            fail(t);
            return;
        }
        CountDownLatch stopped = new CountDownLatch(1);
        Thread keepAlive = new Thread(() -> {
            try {
                stopped.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }, "corrtrace-os-keepalive");
        keepAlive.setDaemon(false);
        keepAlive.start();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
                node.awaitClose(30, TimeUnit.SECONDS);
            } catch (Exception e) {
                e.printStackTrace();
            } finally {
                stopped.countDown();
            }
        }, "corrtrace-os-shutdown"));
        try {
            node.start();
        } catch (Throwable t) {
            fail(t);
        }
        System.out.println("corrtrace-os: node started");
    }

    /** Stack trace, then the cause chain on the LAST lines, so os.sh's log tail shows what went wrong. */
    private static void fail(Throwable t) {
        t.printStackTrace();
        StringBuilder chain = new StringBuilder("corrtrace-os: node failed to start: ").append(t);
        for (Throwable c = t.getCause(); c != null && c != c.getCause(); c = c.getCause()) {
            chain.append("\n  caused by: ").append(c);
        }
        System.err.println(chain);
        System.err.flush();
        Runtime.getRuntime().halt(3);
    }
}
