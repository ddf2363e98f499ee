from setuptools import find_packages, setup

package_name = 'critic_monitor'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    package_data={package_name: ['schema/*.schema.json']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    install_requires=['setuptools'],
    zip_safe=False,
    maintainer='avstack maintainers',
    maintainer_email='maintainers@avstack.dev',
    description=('Independent safety monitor: trajectory checks, watchdogs and a takeover state machine. Never'
                 ' imports torch or the planner.'),
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'critic_node = critic_monitor.critic_node:main',
        ],
    },
)
