package org.elasticsearch.node;

import org.elasticsearch.common.logging.LogConfigurator;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.plugins.ClasspathPluginsService;
import org.elasticsearch.plugins.Plugin;
import org.elasticsearch.plugins.PluginsLoader;
import org.elasticsearch.plugins.PluginsService;
import org.elasticsearch.transport.netty4.Netty4Plugin;

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
 * Runs one real Elasticsearch node (OSS server + Netty4 HTTP/transport) in this JVM,
 * with plugins taken from the classpath instead of an ES distribution's modules dir.
 * It sits in org.elasticsearch.node because Node(NodeConstruction) is package-private.
 *
 * Usage: java -cp launcher.jar:deps... org.elasticsearch.node.CorrtraceEsLauncher key=value...
 * Each key=value is an Elasticsearch node setting; path.home is required.
 */
public final class CorrtraceEsLauncher extends Node {

    static final List<Class<? extends Plugin>> PLUGINS = List.of(Netty4Plugin.class, RootEndpointPlugin.class);

    private CorrtraceEsLauncher(Environment environment, Collection<Class<? extends Plugin>> plugins) {
        super(NodeConstruction.prepareConstruction(environment, null, new NodeServiceProvider() {
            @Override
            PluginsService newPluginService(Environment env, PluginsLoader pluginsLoader) {
                return new ClasspathPluginsService(env.settings(), env, plugins);
            }
        }, true));
    }

    public static void main(String[] args) throws Exception {
        Settings.Builder builder = Settings.builder()
            .put("cluster.name", "corrtrace-test")
            .put("node.name", "corrtrace-es")
            .put("network.host", "127.0.0.1")
            .put("http.port", "9200")
            .put("transport.port", "9300-9399")
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
        try (InputStream in = CorrtraceEsLauncher.class.getResourceAsStream("/corrtrace-es-log4j2.properties")) {
            Files.copy(in, configDir.resolve("log4j2.properties"), StandardCopyOption.REPLACE_EXISTING);
        }

        LogConfigurator.registerErrorListener();
        LogConfigurator.setClusterName(input.get("cluster.name"));
        LogConfigurator.setNodeName(input.get("node.name"));
        Environment environment = InternalSettingsPreparer.prepareEnvironment(input, Map.of(), configDir, () -> input.get("node.name"));
        LogConfigurator.configure(environment, true);

        Node node = new CorrtraceEsLauncher(environment, PLUGINS);
        CountDownLatch stopped = new CountDownLatch(1);
        Thread keepAlive = new Thread(() -> {
            try {
                stopped.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }, "corrtrace-es-keepalive");
        keepAlive.setDaemon(false);
        keepAlive.start();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.prepareForClose();
                node.close();
                node.awaitClose(30, TimeUnit.SECONDS);
            } catch (Exception e) {
                e.printStackTrace();
            } finally {
                stopped.countDown();
            }
        }, "corrtrace-es-shutdown"));
        try {
            node.start();
        } catch (Throwable t) {
            t.printStackTrace();
            System.exit(3);
        }
        System.out.println("corrtrace-es: node started");
    }
}
