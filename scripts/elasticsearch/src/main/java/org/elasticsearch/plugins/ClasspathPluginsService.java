package org.elasticsearch.plugins;

import org.elasticsearch.Build;
import org.elasticsearch.action.admin.cluster.node.info.PluginsAndModules;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.plugins.spi.SPIClassIterator;

import java.lang.reflect.Constructor;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A PluginsService whose plugins are classes already on the JVM classpath
 * (e.g. Netty4Plugin from the transport-netty4 jar) instead of bundles under
 * $ES_HOME/modules and $ES_HOME/plugins. Lives in this package because
 * PluginsService.LoadedPlugin and its helpers are package-private.
 */
public class ClasspathPluginsService extends PluginsService {

    private final List<LoadedPlugin> classpathPlugins;

    public ClasspathPluginsService(Settings settings, Environment environment, Collection<Class<? extends Plugin>> pluginClasses) {
        super(settings, environment.configDir(), new PluginsLoader(Collections.emptySet(), Collections.emptySet(), Collections.emptyMap()));
        List<LoadedPlugin> loaded = new ArrayList<>();
        for (Class<? extends Plugin> pluginClass : pluginClasses) {
            Plugin plugin = loadPlugin(pluginClass, settings, environment.configDir());
            PluginDescriptor descriptor = new PluginDescriptor(
                pluginClass.getName(),
                "classpath plugin",
                "NA",
                Build.current().version(),
                Integer.toString(Runtime.version().feature()),
                pluginClass.getName(),
                null,
                Collections.emptyList(),
                false,
                false,
                false,
                false
            );
            loaded.add(new LoadedPlugin(descriptor, plugin, ClasspathPluginsService.class.getClassLoader()));
        }
        loadExtensions(loaded);
        this.classpathPlugins = List.copyOf(loaded);
    }

    @Override
    protected final List<LoadedPlugin> plugins() {
        return classpathPlugins;
    }

    @Override
    public PluginsAndModules info() {
        return new PluginsAndModules(classpathPlugins.stream().map(LoadedPlugin::descriptor).map(PluginRuntimeInfo::new).toList(), List.of());
    }

    /**
     * All plugins share one class loader, so the SPI iterator sees every provider
     * for every plugin: de-duplicate by provider class and skip providers whose
     * one-argument constructor wants a different plugin type.
     */
    @Override
    @SuppressWarnings("unchecked")
    public <T> List<? extends T> loadServiceProviders(Class<T> service) {
        Map<Class<?>, T> result = new LinkedHashMap<>();
        for (LoadedPlugin loadedPlugin : plugins()) {
            Plugin plugin = loadedPlugin.instance();
            Iterator<Class<? extends T>> it = SPIClassIterator.get(service, plugin.getClass().getClassLoader());
            while (it.hasNext()) {
                Class<? extends T> providerClass = it.next();
                if (result.containsKey(providerClass)) {
                    continue;
                }
                boolean compatible = true;
                for (Constructor<?> c : providerClass.getConstructors()) {
                    if (c.getParameterCount() == 1 && c.getParameterTypes()[0] != plugin.getClass()) {
                        compatible = false;
                        break;
                    }
                }
                if (compatible) {
                    result.put(providerClass, createExtension(providerClass, service, plugin));
                }
            }
        }
        return List.copyOf(result.values());
    }
}
